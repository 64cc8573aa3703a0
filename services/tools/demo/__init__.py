"""`mandat run`: a realistic scenario played through both services, as an upstream agency
would feed them, and a summary of what they decided."""
