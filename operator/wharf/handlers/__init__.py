"""kopf handlers and the reconcile they drive: parse, resolve, render, apply, report."""
