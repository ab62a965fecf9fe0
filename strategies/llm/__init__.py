"""LLM virtual traders: strategies of kind ``llm`` whose decisions come from a model.

A trader is configuration (``config/llm_models.yaml``, ``config/llm_traders.yaml``):
an account slice, a prompt template, risk parameters and a model chain. Modules:
``config`` (loading), ``prompts`` (versioned Jinja2 templates, digests), ``context``
(market, book and performance as of the run), ``decisions`` (the reply's schema),
``client`` (the model chain), ``budget`` (reservations, ``Increment`` counters), ``tokens``
(token bound and estimate), ``cache`` (digest cache and reply archive), ``breaker`` (per model),
``checks`` (pre-trade), ``targets``, ``journal``, ``replay`` (``journal replay``) and ``trader``
(:func:`trader.llm_intent`). Store paths are in :mod:`bus.paths` (``llm_breaker/*`` in ``breaker``).
"""
