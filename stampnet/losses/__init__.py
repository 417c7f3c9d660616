"""Loss functions as pure functions of (targets, predictions), one module per family."""
