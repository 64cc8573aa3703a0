"""Collection service: alinéa 1 of CSS L611-20 (who collects health contributions of the professions libérales)."""
