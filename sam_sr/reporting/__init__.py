"""sam_sr.reporting."""
