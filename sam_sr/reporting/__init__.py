"""Reporting: HTML reports of runs (:mod:`.report`), overlays (:mod:`.visualize`), figures
(:mod:`.figures`) and the inference profiler (:mod:`.profiling`)."""
