"""Benefits service: alinéa 2 of CSS L611-20 (who pays cash benefits)."""
