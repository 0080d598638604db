"""Pure helpers with no I/O and no imports from the rest of Bastion: time, ids, redaction."""
