"""Domain rules with no Flask views: the one place each rule lives."""
