"""The comparison reports: Table 1 over the test predictions and the cross-validation report."""
