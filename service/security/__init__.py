"""Who may do what and how much: API keys and scopes, ownership, rate limits and resource budgets."""
