"""SNMP support for the ``snmp-ups`` driver: transport (:mod:`.session`), the table model
(:mod:`.mib`) and one module per MIB family (``ietf``, ``apcc``, ``mge``, ``apc_pdu``,
``eaton_epdu`` ...; each exposes ``MIBS``)."""
