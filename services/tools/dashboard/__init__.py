"""The operations dashboard: a live web page over the settlement and rejection topics."""
