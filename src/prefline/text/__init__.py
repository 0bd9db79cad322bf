"""Text detectors shared by the data and evals stages: words and clauses (``words``), refusal
(``refusal``, ``refusal_rules``), hedging and disclaimers (``hedging``), citation markers
(``citations``) and evidence text matching (``evidence``).

They sit below both stages: the eval scorers score responses with them, and the data stage's bias
profile reads the style markers of chosen and rejected responses with the same functions.
"""
