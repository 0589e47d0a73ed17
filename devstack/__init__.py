"""Everything that makes sipreg run on one machine; never deployed.

`devstack.wg2sim` stands in for the operator's side (WG2's core and, later, its identity
server). Nothing in `sipreg` imports from here.
"""
