"""sipreg: keeps WG2 Virtual SIP Registrations right."""
