"""SNMP support for the ``snmp-ups`` driver (:mod:`.driver`): the transport (:mod:`.session`), the
table vocabulary (:mod:`.table`), the mapper that applies a table to one device (:mod:`.mapper`)
and one module per MIB family in :mod:`.mibs` (``ietf``, ``apcc``, ``mge``, ``apc_pdu``,
``eaton_epdu`` ...; each exposes ``MIBS``), whose package is the registry."""
