"""sam_sr.evaluation."""
