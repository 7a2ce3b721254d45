"""Browser tests: the dashboard, the inspector and the built docs in headless Chromium.

Run with ``nox -s browser`` (after ``nox -s docs``), or ``pytest tests/browser``.
The plain ``tests`` session leaves this directory out.
"""
