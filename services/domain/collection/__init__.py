"""Collection service: alinéa 1 of CSS L611-20.

Who collects the health contributions of the professions libérales, and what follows.
"""
