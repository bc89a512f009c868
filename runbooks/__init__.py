"""runbooks: diagnose Azure VM backup failures, plan and apply the fixes, prove them with a backup."""
