"""The cost model: the symbol table, the equations (sympy, written once), their generated numpy
twin and its evaluation, the operations of a forward pass, spec→symbol inputs, architecture
tallies, precision paths, runtime-profile efficiency resolution and the M/D/1 queue. Imports
only the spec layer."""
