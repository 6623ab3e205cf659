"""Two-way spreadsheet sync: backends (xlsx, Google Sheets), field mapping, the
three-way merge and the runner. ``sync`` may import ``app``; ``app`` never imports it."""
