"""What both services share: processing, the batch handler, outbound messages, settings, app wiring."""
