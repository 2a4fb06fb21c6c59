"""Coverage-guided fuzzing of every parser with atheris (``make fuzz``; see fuzz/README.md)."""
