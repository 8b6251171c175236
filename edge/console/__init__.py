"""The operator console: receives alerts from one or more boxes, shows them on a web page, and
sends the operators' adjudications back. ``edge console --help``."""
