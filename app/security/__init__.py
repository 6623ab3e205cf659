"""Who may see and do what: the security manager, data scopes and masking."""
