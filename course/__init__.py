"""The course (issue 15): lessons/ holds the scripts, build.py makes the notebooks."""
