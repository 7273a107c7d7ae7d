"""What every layer shares: settings, the domain error, logging and GC tuning. Imports no other layer."""
