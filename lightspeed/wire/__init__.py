"""
The wire: framing, the codec, the sans-IO connection and its handshake.

:data:`CIPHERS` lives here, below both TLS ends, so that the node's
(:obj:`lightspeed.tls`) and ClientLite's (:obj:`lightspeed.liteparts`)
offer the same suites without ClientLite loading Twisted.
"""

#: The TLS 1.2 suites both ends offer (OpenSSL syntax): ephemeral ECDH with
#: AES-GCM or ChaCha20-Poly1305, nothing with CBC or SHA-1.  TLS 1.3's suites
#: are all AEAD and stay as OpenSSL enables them.
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
