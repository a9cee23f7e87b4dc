"""Analysis room: the pure stages of one exam's analysis (no network, no database, no archive I/O).

Series choice from headers, seeds -> findings, tracking identity, prior selection and comparison,
the adapter to and from the protocol engine, and the chain that runs them (:mod:`daemon.analysis.chain`).
"""
