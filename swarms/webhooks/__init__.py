"""Run webhooks: the SSRF guard on their URLs (ssrf.py), their signing secrets and signatures
(signing.py), and their delivery, retries and redelivery (delivery.py)."""
