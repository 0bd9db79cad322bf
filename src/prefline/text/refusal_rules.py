"""The phrase rules the refusal classifier (``style_refusal``) reads: what a refusal, a
withheld part, a deflection, an evasion, an offer, a pointer elsewhere and an explanation
look like. Every pattern reads lower-cased text with quoted speech and code removed
(``prefline.text.words.prepare``).

docs/detectors.md gives their measured accuracy on the hand-labelled sets in
tests/data/validation/, including a held-out set, and the phrasings they are known to miss.
"""

from __future__ import annotations

import re

from prefline.text.words import lower_rx


def _rx(pattern: str) -> re.Pattern[str]:
    return lower_rx(pattern)  # every pattern here reads lower-cased text


def _words(pattern: str) -> re.Pattern[str]:
    """A pattern whose every match starts with a letter; saying so up front lets the regex
    engine skip the other positions quickly."""
    return _rx(f"(?=[a-z])(?:{pattern})")


def _alternatives(*patterns: str) -> re.Pattern[str]:
    return _words("|".join(f"(?:{p})" for p in patterns))


# Two kinds of negation. "I won't / I'm not going to / I'd rather not" + almost any verb
# declines; the exceptions are idioms ("I won't bore you", "I'm not going to lie").
# "I can't / I'm unable to / I don't" also states limits ("I can't see your screen", "I can't
# stress this enough"), so it declines only with a verb of doing what was asked.
_ADV = r"(?:(?:really|actually|simply|just|currently|possibly|personally|honestly|in good conscience|ethically|responsibly|safely|directly|fully|always|ever|be)\s+)?"
_STRONG = (
    r"(?:won't|will not|will never|(?:'m|am) not going to|refuse to|decline to|(?:'d|would) (?:really |much |honestly )?(?:rather|prefer) not(?: to)?"
    r"|prefer not to|(?:'m|am) (?:not willing|unwilling) to|(?:'m|am) not comfortable|(?:'m|am) not about to)"
)
_IDIOM = (
    r"(?:bore|lie|lying|pretend(?!\s+to\b)|sugar-?coat\w*|waste|keep you|stress|overstate|repeat|judge|bother|lecture|kid|mince"
    r"|beat|go on|dwell|belabou?r|rehash|forget|deny|let you down|leave you hanging|believe|ever|hesitate|argue|complain|sugarcoat)"
)
_WEAK = (
    r"(?:can't|cannot|can not|won't be able to|will not be able to|(?:'m|am) (?:not (?:really |quite |currently )?|un)able to"
    r"|(?:'m|am) not (?:allowed|permitted|in a position) to|shouldn't|should not|must not)"
)
_VERB = (
    r"(?:help|assist|provide|give|share|write|create|generate|produce|make|comply|fulfil+|support|answer|engage|offer"
    r"|explain|discuss|tell|describe|detail|list|recommend|suggest|go into|get into|go along|go there|translate|continue"
    r"|draft|build|walk|put together|take|role-?play|participate|say|confirm|name|comment|speculate|weigh in|predict"
    r"|reproduce|include|debug|plan|identify|advise|diagnose|disclose|reveal|teach|show|encourage|condone|facilitate"
    r"|endorse|look up|find out|contribute|impersonate|complete|process|perform|carry out|be (?:of )?help|spell"
    r"|be part of|output|send|post|publish|design|develop|code|craft|compose|fabricate|forge|outline|summari[sz]e|crack"
    r"|do (?:that|this|it|so|what|the|any|anything|something like)|do\b(?=\s*[.!,]))"
)
_DONT_VERB = r"(?:help|assist|provide|write|create|generate|produce|do|engage|support|share|give out|make|offer|participate)"
# "... help with anything else" and "... recommend it highly enough" do not decline the request.
_NOT_DECLINE = r"(?![^.!?\n]{0,60}\benough\b)(?!\s+(?:you\s+)?(?:with\s+)?(?:anything|something)\s+else)"

REFUSAL_CUES: dict[str, re.Pattern[str]] = {
    name: _rx(pattern)
    for name, pattern in {
        "i-will-not": rf"\bI\s*{_ADV}{_STRONG}\s+{_ADV}(?!{_IDIOM}\b)[a-z]+{_NOT_DECLINE}",
        "i-cannot-verb": rf"\bI\s*{_ADV}{_WEAK}\s+{_ADV}(?:[a-z]+\s+or\s+)?(?:be\s+\w+ing\b|{_VERB}\b){_NOT_DECLINE}"
                         rf"|\bI\s+{_ADV}(?:don't|do not)\s+{_ADV}{_DONT_VERB}\b{_NOT_DECLINE}",
        "i-cannot": r"\bI\s+(?:really\s+)?(?:can't|cannot|won't|will not|must decline|decline|refuse)\s*(?:[.!]|,?\s+sorry)|\bI(?:'d| would) (?:really )?rather not\s*[.!]",
        "cannot-verb": rf"(?:^|[.!?,:]\s*|\bnope,?\s+|\bno,?\s+)(?:not going to|can't|cannot|won't)\s+{_VERB}\b{_NOT_DECLINE}",
        "not-something-i": r"(?:\bnot|n't|\bnever)\s+(?:really\s+)?(?:something|a request|a thing|a task|a job|a topic|a subject|a question|an area|anything|the (?:kind|sort|type) of \w+) (?:that )?I(?:'ll|'m| will| can| am| would| could)?\b",
        "something-i-wont": r"\b(?:something|a request|a line|one|thing|task) (?:that )?I (?:cannot|can't|won't|will not|will never|must decline|have to (?:decline|turn down|refuse)|refuse to)\b",
        "must-decline": r"\bI(?:'ll|'m going to| will| must| have to| need to| am going to)?\s*(?:have to\s+|need to\s+)?(?:respectfully\s+)?(?:decline|refuse(?! to believe)|turn (?:this|it|that) down|say no\b|pass on)",
        "declining": r"\bI(?:'m| am) (?:declining|refusing|going to pass)\b|\bI'll pass\b|\bsit (?:this|that) one out\b|\bhard no\b|\bno can do\b|\boff-limits\b"
                     r"|\bmy answer (?:has to be|is|must be) no\b|\bnot happening\b|\bcross(?:es)? a line\b|\bstop you (?:right )?there\b",
        "outside-what-i-can": r"\b(?:outside|beyond)\b[^.!?]{0,40}\bI(?:'m| am)?\s*(?:can|could|able|allowed|permitted|help|do)\b(?!\s+(?:to\s+)?(?:judge|assess|tell|know|say|see)\b)",
        "against-policy": r"\bnot within my (?:\w+ )?(?:guidelines|policies|programming|principles|rules)|\b(?:against|violates?|goes against|breach(?:es)?) (?:my|the|our) (?:usage |content |safety )?(?:guidelines|policies|policy|programming|principles|rules)"
                          r"|\bmy (?:guidelines|policies|programming|rules|principles) (?:don't|do not) (?:allow|permit)",
        "designed-to-avoid": r"\bI(?:'m| am) (?:designed|programmed|trained|built) to (?:avoid|decline|refuse)",
        "not-appropriate-for-me": r"(?:\bnot|n't) (?:be )?(?:appropriate|ethical|right|responsible|safe) for me to\b|\b(?:it(?:'s| is)|that(?:'s| is)|this is) not (?:appropriate|ethical)\b",
        "not-comfortable": r"\bI(?:'m| am| do not| don't)\s+(?:really\s+)?(?:not\s+)?(?:feel\s+)?comfortable\b",
        "dont-think-i-should": r"\bI don't think I (?:should|can|could)\s+(?:help|assist|do|provide|answer)",
        "as-an-ai-cannot": r"\bas an? (?:AI|artificial intelligence|language model|large language model|assistant)\b[^.!?]{0,60}\b(?:can't|cannot|unable|not able|not permitted|not allowed|do not provide|don't provide|must decline|have to decline)",
    }.items()
}

# A refusal of medical/legal/financial *advice* followed by a full answer is a disclaimer, not a refusal.
ADVICE_DISCLAIMER = _rx(
    r"\b(?:give|provide|offer)\s+(?:you\s+)?(?:personal(?:ized|ised)?\s+|professional\s+|individual\s+|specific\s+)?"
    r"(?:medical|legal|financial|investment|tax|professional|personal(?:ized|ised)?)\s+advice"
)

# Withholding a named part of the request, with or without a refusal verb.
WITHHOLD = _alternatives(
    r"\bwithout going into\b",
    r"\b(?:go|get|going|getting) into (?:the |any )?(?:specifics|details|detail|exact|mechanics)",
    r"\bI(?:'ve| have| will|'ll|'d| would|'m going to)?\s+(?:also\s+)?(?:left|leave|leaving) (?:out|off)\b"
        r"|\b(?:left|leave|leaving) out the\b",
    r"\bI(?:'ve| have)?\s+(?:skipped|omitted|removed|toned down|cut out|cut)\s+(?:the|a|any|some)\b",
    r"\bI(?:'m| am|'ll| will)?\s+(?:going to\s+)?(?:skip|skipping|omit|omitting)\s+(?:the|that)\b",
    r"\b(?:leave|leaving|set|setting) aside the\b",
    r"\b(?:the|that) (?:part|bit|section) (?:about|where|on)\b",
    r"\b(?:didn't|did not|won't|will not|not going to) include\b",
    r"\bminus the\b",
    r"\bexcept (?:for )?the (?:part|section)",
    r"\b(?:but|though|although) not (?:a |an |the |any )?(?:full|whole|complete|specific|exact|detailed|step|whether|instructions|operational|how|which|the rest)",
    r"\b(?:can't|cannot|won't|not) be (?:too|very|more|overly|that) (?:specific|detailed|precise|explicit)",
    r"\bI(?:'m| am|'ll| will)\s+(?:only|just)\s+(?:going to\s+)?(?:cover|answer|address|stick|focus|give|do|help with)\b",
    r"\bI(?:'ll| will)\s+stick to\b",
    r"\bstay(?:ing)? (?:general|high-level|vague)\b",
    r"\brather than (?:anything|something) (?:specific|detailed|tailored)",
    r"\bhold(?:ing)? off on\b",
    r"\b(?:leave|leaving|left|keep|kept|keeping) (?:the|that|this|those|a|some|any) (?:[\w-]+\s+){0,3}?out\b"
        r"|\b(?:kept|keeping|left|leaving) (?:out|off) (?:the|that|this|any)\b",
    r"\b(?:kept|keeping|left|leaving) off (?:the|that|this|any)\b",
    r"\b(?:has|have) to come from you\b",
    r"\bstop short of\b",
    r"\bwhat I can (?:say|tell you|share|do) is\b",
    r"\bkeeping [^.!?]{1,40} vague\b",
    r"\b(?:help|answer) (?:with )?the (?:first|second) (?:part|two|three|half)",
    r"\banswer the part\b",
    r"\bhere's the (?:rest|first (?:half|part))\b",
    r"\blimited in (?:how|what)\b",
    r"\bfor the rest\b",
    r"\bthe first (?:two|three|four|few|part|half)\b",
)
# Scope words in the refusing clause: it declines *part* of the request.
SCOPE = _words(
    r"\b(?:specifics?|exact(?:ly)?|precise|details?|detailed|step[- ]by[- ]step|the whole|whole|the full|full|entire"
    r"|word for word|the part|the section|the last|whether|which one|which|definitive|personal(?:ized|ised)?|opinion"
    r"|tailored|in (?:[\w']+\s+){1,2}(?:voice|name)|as if|operational|quantities|fully|all the|the rest)\b"
)
# After a refusal, a turn to delivered content.
PIVOT = _rx(
    r"^(?:sure|okay|ok|yes|of course|alright|absolutely)?[,!.]?\s*(?:but|though|although|however|that said|still|yet)?,?\s*(?:I can (?:\w+\s+){0,2}?(?:you\s+)?(?:a |the |some )?"
    r"(?:general|high-level|broad|overview|outline|main|common|basic|first)"
    r"|here(?:'s| is| are)\b|in general\b|generally\b|broadly\b|as a rule\b|in broad strokes\b|in principle\b"
    r"|historically\b|basically\b|the rest\b|what I can\b|I can (?:confirm|say|tell you|share|explain|describe|note|point out)\b)"
    r"|^I can (?:\w+\s+){0,2}?(?:you\s+)?(?:a |the |some )?(?:general|high-level|broad|overview|outline|main ideas|common|basic)"
    # announcing what is delivered: "I'll explain how it works, but ..."
    r"|^(?:I'll|I will|let me|here's|here is)\s+(?:\w+\s+){0,2}?(?:explain|describe|show|give|tell|summari[sz]e|answer|cover|outline|list|translate|write|walk)\b"
)
# A refusing clause that turns from something already delivered: "I'll explain X, but I can't do Y".
AFTER_DELIVERY = _rx(r"^(?:but|though|although|however|yet)\b")
# Courtesy before or after a refusal ("Thanks for asking, but ...") delivers nothing.
COURTESY = _rx(
    r"^(?:hey|hmm|oh|well|okay|ok|look|thanks|thank you|sorry|apolog|my apologies|I appreciate|I understand|I get (?:that|it)"
    r"|I hear you|I know|I'd (?:like|love) to|I wish|while I|as much as|I'm (?:really |so |very )?sorry|I am sorry"
    r"|it sounds like|that sounds)\b"
)

# Clauses that are not delivered content.
OFFER = _words(
    r"\b(?:I|we)(?:'m|'d| am| would| can| could| will)?\s+(?:also\s+)?(?:be\s+)?(?:happy|glad|more than happy)\b"
    r"|\b(?:I|we) (?:can|could) (?:help|point|suggest|talk|give feedback|offer|assist)\b|\bhappy to\b|\bglad to\b"
    r"|\bwould you like\b|\bif you(?:'d| would) (?:like|prefer)\b|\bif you want\b|\bif that (?:would|helps)\b|\blet me know\b"
    r"|\bis there (?:anything|another|something)\b|\b(?:anything|something) else\b|\binstead\b|\bwe can talk\b"
    r"|\bI (?:can|could) (?:help|give|write|draft)\b"
)
REDIRECT = _words(
    r"\bif (?:you|someone)(?:'re| are|'ve| have| or| need| think| want| feel|'d)?\b|\b(?:contact|reach out)\b"
    r"|\b(?:call|text|dial)(?: or text)?\s+(?:\d|the|a|an|your|emergency|poison|them|someone|us|local)"
    r"|\bhelp ?line|\bhotline|\blifeline|\bcrisis\b|\bemergency services\b|\bpoison control\b|\bsupport services\b"
    r"|\b(?:can|will|could) (?:help|explain|walk you|get you|give you|assist)\b"
    r"|\bis (?:a |the )?(?:better|right|responsible|best|proper) (?:route|person|way|place|option)"
    r"|\bthe way back in\b|\b(?:platforms|organi[sz]ations|services|resources) like\b|\bdon't have to face\b"
)
REFERRAL = _alternatives(
    r"\b(?:doctor|physician|GP|pharmacist|prescriber|p(?:a)?ediatrician|dermatologist|specialist|professional|expert"
        r"|lawyer|attorney|solicitor|accountant|financial advis[eo]r|advis[eo]r|vet|veterinarian|therapist|counsell?or"
        r"|electrician|plumber|mechanic|technician|engineer|inspector|dentist|nurse|salon|HR(?: department)?|registrar"
        r"|locksmith|mediator|someone (?:who|with)|reputable sources|personali[sz]ed advice|professional opinion)\b",
    # "ask your teacher", "run it past your GP", "talk it over with your partner"
    r"\b(?:ask|asking|consult\w*|see|seeing|talk(?:ing)? (?:it )?(?:over )?(?:to|with)|speak(?:ing)? (?:to|with)|check(?:ing)? with"
        r"|run (?:that|this|it) (?:past|by)|one to run past)\s+(?:a|an|your|the)\s+(?:[\w-]+\s+){0,2}?[\w-]+(?:er|or|ist|ian|ant|ent)\b",
)
EXPLANATION = _words(
    r"\b(?:illegal|unlawful|a crime|crimes?|criminal|fraud|abuse|assault|harm|harmful|hurt|injure|dangerous|danger|risks?"
    r"|sabotage|impersonation|scam|unauthori[sz]ed|violates?|against the law|penalt(?:y|ies)|charges|mislead|unsafe"
    r"|unethical|privacy|consent|endanger|escalate|legal trouble|copyrighted|because|since|would (?:mean|involve|be)"
    r"|could (?:put|hurt|harm|expose|be used|endanger|lead|land)|at risk|guidelines|polic(?:y|ies)|terms|the law)\b"
)
EVASION = _alternatives(
    r"\bit (?:really )?depends\b|\bdepends on (?:a lot|many|several|various|your|who|the situation|individual|a number)"
        r"|\bdepends? (?:on|upon)\b|\bwhat's right (?:for you )?depends\b",
    r"\b(?:hard|difficult|impossible|tough) to (?:say|tell|know)\b",
    r"\bno (?:simple|easy|clear|definitive|single|one-size-fits-all) answer|\bwith a clear answer\b|\bstraight answer\b"
        r"|\bnot (?:a|an) (?:simple|easy|straightforward) answer\b|\bno (?:clear-cut|clear|right|straight|universal|good|one|single) answer\b",
    r"\b(?:every|each) (?:case|situation|person|body) is different\b|\beveryone(?:'s| is) (?:body |situation )?(?:is )?different\b",
    r"\b(?:lots|a lot|many|plenty) of (?:opinions|factors|views|perspectives|things)",
    r"\ba lot to consider\b",
    r"\breasonable people (?:disagree|differ)\b",
    r"\bpersonal preference\b",
    r"\bit(?:'s| is) complicated\b|\bcomplicated (?:topic|question|issue|area)\b",
    r"\bit varies\b|\bvar(?:y|ies) (?:a lot|widely)\b|\bvar(?:y|ies) from person to person\b",
    r"\barguments on both sides\b",
    r"\bsteer you wrong\b|\bthe wrong idea\b",
    r"\bdo your own research\b",
    r"\blook into (?:it|this|that|reputable)",
    r"\bask around\b",
    r"\blisten to your body\b",
    r"\bwork out one way or another\b",
    r"\bsounds plausible\b",
    r"\bmany ways to approach\b",
    r"\b(?:so many|too many|lots of|a lot of) variables\b",
    r"\b(?:couldn't|can't|cannot) (?:really )?say\b(?! no\b| yes\b)",
    r"\bwithout (?:more|further|knowing more) (?:context|information|details)\b|\bwithout (?:seeing|knowing|examining)\b",
    r"\bdiffer(?:s)? (?:a lot|quite a bit|widely)\b",
    r"\bcomes? down to\b",
    r"\bnot (?:a|an) (?:simple|easy|straightforward) (?:question|one)\b",
    r"\bopinions (?:on this |on that )?(?:differ|vary)\b",
    r"\bleave it (?:up )?(?:for|to) you\b",
    r"\bup to you\b",
    r"\b(?:both|either) ways?\b",
    r"\bjudg(?:e?ment) call\b",
    r"\bonly you can (?:make|decide|say|know|judge)\b",
    r"\bmy place to\b",
    r"\bno way (?:to|for me to) (?:say|know|tell)\b",
    r"\bwhat's right for you\b",
    r"\bwhat I can (?:judge|assess|tell|know|see) from here\b",
    r"\bcould be (?:a lot of|many|any number of) things\b",
    r"\bwouldn't want to guess\b",
    r"\bthat's (?:a )?tricky\b",
    r"\bno right or wrong\b",
    r"\bsolid options\b",
    r"\bbe careful\b",
    r"\boutside my (?:expertise|area)\b",
    r"\bwho you ask\b",
    r"\bbest person to ask\b",
    r"\bcase by case\b",
)

# Every refusal cue contains one of these strings: a clause without any is not looked at
# (a literal alternation is an order of magnitude faster to search than the cues).
CUE_GATE = re.compile(
    r"n't|not\b|cannot|never|declin|refus|rather not|prefer not|unwilling|unable|off-limits|outside|beyond|guideline"
    r"|polic|programming|principles|rules|designed to|programmed to|trained to|built to|for me to|comfortable|as an? "
    r"|stop you|cross|one out|no can do|hard no|pass|turn|say no|happening"
)
# Strings one of which every match of each cue contains: a cue is tried on a clause only if
# one of its strings occurs there (a substring test costs far less than the pattern).
CUE_NEEDLES: dict[str, tuple[str, ...]] = {
    "i-will-not": ("won't", "will not", "will never", "not going to", "refuse to", "decline to", "rather not", "prefer not",
                   "not willing", "unwilling", "not comfortable", "not about to"),
    "i-cannot-verb": ("can't", "cannot", "can not", "able to", "not allowed", "not permitted", "not in a position", "shouldn't",
                      "should not", "must not", "don't", "do not"),
    "i-cannot": ("can't", "cannot", "won't", "will not", "decline", "refuse", "rather not"),
    "cannot-verb": ("not going to", "can't", "cannot", "won't"),
    "not-something-i": ("not", "n't", "never"),
    "something-i-wont": ("cannot", "can't", "won't", "will not", "will never", "must decline", "have to", "refuse to"),
    "must-decline": ("decline", "refuse", "turn ", "say no", "pass on"),
    "declining": ("declining", "refusing", "going to pass", "i'll pass", "one out", "hard no", "no can do", "off-limits",
                  "my answer", "not happening", "a line", "stop you"),
    "outside-what-i-can": ("outside", "beyond"),
    "against-policy": ("guideline", "polic", "programming", "principles", "rules"),
    "designed-to-avoid": ("designed to", "programmed to", "trained to", "built to"),
    "not-appropriate-for-me": ("for me to", "not appropriate", "not ethical"),
    "not-comfortable": ("comfortable",),
    "dont-think-i-should": ("don't think i",),
    "as-an-ai-cannot": ("as a",),
}
CLAUSE_KINDS = (("evasion", EVASION), ("pivot", PIVOT), ("offer", OFFER), ("referral", REFERRAL),
          ("redirect", REDIRECT), ("courtesy", COURTESY), ("explanation", EXPLANATION))
ANCHORED_KINDS = ("pivot", "courtesy")  # they match at a clause's start, so a whole-text search cannot rule them out

# Refusals that decline the question's premise rather than the task, read only in the
# response's first three clauses (later in an answer the same words are part of the content):
# "As an AI, I don't hold personal opinions. However, ...", "It is not accurate or fair to say
# that ...", "I don't think it's appropriate to ...", "There is no justification for ...",
# "I don't have access to personal information about ...", "I must point out that ... may not
# be appropriate".
_JUDGEMENT = (
    r"(?:accurate|appropriate|fair|correct|right|ethical|respectful|okay|ok|acceptable|reasonable|helpful|productive"
    r"|justified|justifiable|responsible|kind|valid|true|best|possible|a good idea|a fair|an appropriate)"
)
_SAYING = (
    r"(?:say|suggest|claim|argue|assume|imply|state|generali[sz]e|make|label|characteri[sz]e|describe|refer|call|judge"
    r"|compare|single out|exclude|deny|discriminate|stereotype|target|ask|speculate|list|give|provide|prohibit|ban|bar)"
)
OPENING_CUES: dict[str, re.Pattern[str]] = {
    name: _rx(pattern)
    for name, pattern in {
        "no-personal-opinion": r"\b(?:i|ai)\b[^.!?]{0,40}\b(?:don't|do not|doesn't|does not|cannot|can't)\s+(?:\w+\s+)?(?:hold|have|share|form|take|express|offer|possess)"
                               r"\s+(?:any\s+)?(?:personal\s+|my own\s+)?(?:opinions?|views?|beliefs?|sides|preferences?|stances?|political|feelings)\b",
        "not-appropriate-to-say": rf"^(?:no,?\s+|well,?\s+)?(?:(?:it|that|this)(?:'s|\s+is|\s+would be)\s+(?:not|neither|never|in no way)\s+(?:\w+\s+)?{_JUDGEMENT}"
                                  rf"|(?:it|that|this)\s+(?:isn't|wouldn't be|would not be|would never be)\s+(?:\w+\s+)?{_JUDGEMENT}"
                                  rf"|(?:it|that|this)(?:'s|\s+is|\s+would be)\s+(?:\w+\s+)?(?:inappropriate|unfair|wrong|unethical|inaccurate|disrespectful|harmful|incorrect))"
                                  rf"(?:\s+(?:or|nor|and)\s+\w+)?\s+(?:to|for (?:me|us|anyone|you) to)\s+(?:\w+\s+)?{_SAYING}\b",
        "dont-think-appropriate": rf"^(?:no,?\s+)?I\s+(?:don't|do not)\s+(?:think|believe|feel)\s+(?:that\s+)?(?:it(?:'s| is| would be)|that(?:'s| is| would be)|this is)\s+(?:\w+\s+)?{_JUDGEMENT}"
                                  rf"|^I(?:'m| am) not sure (?:that\s+)?(?:it(?:'s| is)|that(?:'s| is)) (?:\w+\s+)?{_JUDGEMENT}",
        "not-best-for": r"^(?:it|that)(?:'s| is) not (?:necessarily )?(?:best|better|good) for (?:society|any|a|the|people|us|everyone|women|men)\b",
        "dont-think-you-should": r"^no,?\s+I\s+(?:don't|do not)\s+think\s+(?:you|anyone|we|people)\s+should\b"
                                 r"|^I\s+(?:don't|do not)\s+think\s+(?:you|anyone|we|people)\s+should\s+(?:say|suggest|claim|argue|assume|generali[sz]e)\b"
                                 r"|^no,?\s+(?:it|that)(?:'s| is| would be)\s+(?:\w+\s+)?(?:wrong|illegal|dangerous|harmful|a crime|not okay)\b",
        "should-not-be-denied": r"^(?:no,?\s+)?[^.!?]{0,60}\bshould (?:not|never) be (?:denied|excluded|barred|banned|prevented|kept out|judged|paid less"
                                r"|treated (?:differently|worse|unfairly)|discriminated|singled out|refused|deprived|prohibited)\b",
        "no-justification": r"^there(?:'s|\s+is|\s+are|\s+was|\s+were)\s+(?:absolutely\s+)?no\s+(?:\w+\s+)?(?:justification|benefits?|excuse|positive (?:aspects|outcomes|side|effects)|good (?:reason|side)|valid (?:reason|argument))\b"
                            r"|\b(?:was|is|were|are)\s+(?:not|never|in no way)\s+(?:\w+\s+)?(?:justified|justifiable|a good thing|beneficial|acceptable|reasonable|a myth|a hoax|a fabrication|made up|exaggerated|overstated)\b"
                            r"|\bcan(?:not|'t)\s+be\s+justified\b",
        "no-access-personal": r"\bI\s+(?:don't|do not)\s+have\s+(?:any\s+)?(?:access to|information (?:about|on)|the ability to (?:look up|access|find))\s+(?:\w+\s+){0,3}?"
                              r"(?:personal|private|individuals|people|your|someone|anyone|their|his|her|specific)\b"
                              r"|\bI(?:'m| am) (?:unable|not able) to access (?:personal|private)\b",
        "must-point-out": r"\bI (?:must|have to|need to|should|feel I should|want to) (?:point out|clarify|note|emphasi[sz]e|stress|say|respectfully disagree)\b"
                          r"(?=[^.!?]*\b(?:not (?:be )?(?:the most )?(?:appropriate|respectful|accurate|valid|fair|okay|acceptable|ethical)|inappropriate|harmful|offensive"
                          r"|disrespectful|discriminat\w*|stereotyp\w*|incorrect|untrue|problematic|prejudice|bias\w*|premise|promotes?|private|confidential|privacy|no justification|unjust\w*|undemocratic|violent|misread|misunderstood|come across)\b)",
        "not-permitted-privacy": r"\bnot (?:allowed|permitted|available|accessible|possible)\b[^.!?]{0,40}\b(?:privacy|confidential\w*|data protection)\b",
        "not-recommended-instead": r"^(?:it(?:'s| is)|that(?:'s| is))\s+(?:generally\s+|usually\s+|really\s+)?not\s+(?:recommended|advisable|a good idea|safe|wise|a safe)\b"
                                   r"|^I (?:wouldn't|would not|do not|don't) (?:recommend|advise|suggest)\b"
                                   r"|^[^.!?]{0,80}\b(?:is|are) (?:not|never) (?:a )?(?:good idea|safe|humane|wise|recommended|advisable)\b"
                                   r"|^it(?:'s| is) important to (?:note|remember|know) that [^.!?]{0,120}\b(?:harmful|dangerous|illegal|cruel|inhumane|not (?:a )?(?:safe|sustainable|humane|good|recommended))\b",
    }.items()
}
# "As an AI, I don't hold personal opinions" declines an opinion question when the response then
# pushes back on its premise; answering a whimsical question ("toasters can't vote: they are
# not sentient") after the same disclaimer is compliance.
PUSHBACK = _rx(
    r"\b(?:fair\w*|unfair\w*|equal\w*|discriminat\w*|rights?|respect\w*|dignity|stereotyp\w*|prejudice\w*|inclusiv\w*"
    r"|regardless of|should not|shouldn't|inherently|bias\w*|harmful|controversial|subjective|diverse|diversity"
    r"|no (?:\w+ )?reason|(?:nobody|no one) should|just as|deserves?|entitled|unjust\w*|undemocratic)\b"
)
WHIMSY = _rx(
    r"\bnot (?:human(?: beings)?|sentient|living|people|persons)\b|\binanimate\b|\bfictional\b|\ba joke\b|\briddle\b|\bhumou?rous\b"
    r"|\bplay on words\b|\bbeing (?:fruits?|vegetables?|animals?|objects?|appliances?|insects?|plants?)\b|\bmetaphor"
)
# "It's not recommended to ..." declines only when the response turns to an alternative.
ALTERNATIVE = _rx(r"\binstead\b|\bsafer\b|\b(?:better|alternative|humane|other) (?:approach|option|way|method|solution)s?\b|\brather than\b")
