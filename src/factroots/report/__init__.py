"""Report stage: figures, report.md and report.html from the output tables."""
