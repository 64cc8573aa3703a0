"""What both services share.

Processing, the batch handler, outbound messages, settings and app wiring.
"""
