"""Network room: everything DIMSE (SCP, admission, fast path, file meta, query/retrieve and store SCUs).

The only room that imports pynetdicom; pynetdicom internals are touched only in :mod:`daemon.network.fastpath`.
"""
