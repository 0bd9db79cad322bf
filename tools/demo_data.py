"""Write the demo's preference data (src/prefline/resources/demo/signals/): four kinds of signal about
the same kind of question, authored for prefline, in which the raters, users and judge systematically
prefer the longer answer.

Each topic is a short question with a direct answer of a sentence or so, and a padded one of about 220
words (the same answer wrapped in a friendly opener, two paragraphs of padding shared by all topics, two
sentences of elaboration and a closing offer). The padded answers are far longer than both the direct
ones and SmolLM2-135M-Instruct's own answers (129 tokens on average on the smoke suite, measured), so a
preference for them points to longer answers than the model gives. An earlier version, whose padded
answers of about 55 words were shorter than the model's own, made its answers shrink under DPO (129 to
116 tokens). Most signals prefer the padded answer; about a quarter prefer the direct one, so a
length-balanced version of the data keeps both directions.

    python tools/demo_data.py    # rewrites the four files; deterministic
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "prefline" / "resources" / "demo" / "signals"

# (intent, surface, prompt, direct answer, elaboration)
TOPICS = [
    ("factual", "chat", "What is the capital of Canada?", "Ottawa.",
     "It sits in the province of Ontario, on the south bank of the Ottawa River. It was chosen as the capital in 1857, partly as a compromise between English- and French-speaking regions."),
    ("factual", "voice", "How many legs does a spider have?", "Eight.",
     "All spiders belong to the arachnids, which have eight legs, unlike insects, which have six. Their body also has two main parts rather than three."),
    ("factual", "chat", "Which planet is closest to the Sun?", "Mercury.",
     "It orbits the Sun in about 88 Earth days, the shortest year in the solar system. Despite being closest, it is not the hottest planet; Venus is, because of its thick atmosphere."),
    ("factual", "voice", "How many minutes are in a day?", "1,440 minutes.",
     "That is 24 hours multiplied by 60 minutes in each hour. In seconds, the same day lasts 86,400 seconds."),
    ("factual", "chat", "What is the chemical symbol for gold?", "Au.",
     "The symbol comes from the Latin word aurum. Gold has the atomic number 79 on the periodic table."),
    ("factual", "voice", "What is the freezing point of water in Fahrenheit?", "32 degrees Fahrenheit.",
     "That matches 0 degrees Celsius at normal atmospheric pressure. Salt dissolved in the water lowers the freezing point, which is why roads are salted in winter."),
    ("factual", "chat", "Who wrote the novel Pride and Prejudice?", "Jane Austen, in 1813.",
     "It follows Elizabeth Bennet and her changing opinion of Mr Darcy. Austen also wrote Sense and Sensibility and Emma, among other novels."),
    ("factual", "voice", "How many continents are there?", "Seven.",
     "They are Africa, Antarctica, Asia, Australia, Europe, North America and South America. Some traditions count fewer by joining Europe and Asia, or the two Americas."),
    ("factual", "chat", "What is the largest ocean on Earth?", "The Pacific Ocean.",
     "It covers roughly a third of the planet's surface, more than all the land combined. Its deepest point, the Challenger Deep, is nearly eleven kilometres down."),
    ("factual", "voice", "What is the speed of sound in air?", "About 343 metres per second at room temperature.",
     "It is a little slower in cold air and a little faster in warm air. In water, sound travels more than four times as fast."),
    ("factual", "chat", "What gas do humans breathe out that plants use?", "Carbon dioxide.",
     "Plants take it in through small pores in their leaves and use it in photosynthesis. In return they release oxygen, which animals breathe in."),
    ("factual", "voice", "How many days are in a leap year?", "366 days.",
     "The extra day is added at the end of February. Leap years come every four years, except most century years, so the calendar stays in step with the seasons."),
    ("howto", "chat", "How do I take a screenshot on Windows?", "Press Windows + Shift + S, then drag over the area you want; the image is copied to the clipboard.",
     "You can paste it straight into an email or a document with Ctrl + V. Pressing the Print Screen key alone captures the whole screen instead."),
    ("howto", "voice", "How do I set a timer on my phone?", "Open the Clock app, tap Timer, choose the time and press Start.",
     "Most phones also let you ask the voice assistant to set a timer for a given number of minutes. The timer keeps running when the screen is off or you switch apps."),
    ("howto", "chat", "How do I remove a coffee stain from a shirt?", "Rinse it from the back with cold water, rub in a little liquid detergent, wait five minutes, then wash as usual.",
     "Acting quickly makes a big difference, because dried stains are harder to lift. Avoid hot water and the dryer until the stain is gone, since heat can set it."),
    ("howto", "voice", "How do I boil rice?", "Rinse one cup of rice, add two cups of water and a pinch of salt, bring to a boil, cover and simmer for 18 minutes.",
     "Let it rest with the lid on for five minutes before fluffing it with a fork. Brown rice needs more water and about twice as long."),
    ("howto", "chat", "How do I unclog a sink drain?", "Pour in boiling water, then use a plunger with a tight seal for a minute or two.",
     "If that fails, half a cup of baking soda followed by a cup of vinegar can loosen grease after fifteen minutes. A drain snake reaches clogs further down the pipe."),
    ("howto", "voice", "How do I reset my router?", "Unplug it, wait thirty seconds, plug it back in and give it two minutes to reconnect.",
     "This restart fixes most slow or dropped connections. A factory reset, with the small recessed button, erases your settings, so keep it as a last resort."),
    ("howto", "chat", "How do I change a car's flat tyre?", "Loosen the nuts, jack the car up, swap the wheel for the spare, then tighten the nuts in a star pattern and lower the car.",
     "Park on firm, level ground and put the handbrake on before you start. Check the spare's pressure and have the flat repaired soon, since spares are often for short distances only."),
    ("howto", "voice", "How do I keep cut basil fresh?", "Stand the stems in a glass of water at room temperature, like flowers.",
     "Loosely cover the leaves with a plastic bag and change the water every day or two. Keep it out of the fridge, where the leaves turn black."),
    ("howto", "chat", "How do I convert Celsius to Fahrenheit?", "Multiply by 9/5 and add 32.",
     "For example, 20 degrees Celsius times 1.8 is 36, plus 32 gives 68 degrees Fahrenheit. To go the other way, subtract 32 and multiply by 5/9."),
    ("howto", "voice", "How do I make a cup of tea?", "Pour freshly boiled water over a tea bag, steep for three to five minutes, then remove the bag.",
     "Black tea likes water just off the boil, while green tea is better a little cooler. Add milk or lemon to taste after steeping."),
    ("advice", "chat", "Should I stretch before running?", "Do a few minutes of easy jogging and dynamic moves like leg swings first; save long static stretches for after.",
     "Holding stretches on cold muscles does little to prevent injury and can reduce power briefly. A gentle warm-up raises your heart rate and loosens the joints."),
    ("advice", "voice", "How can I fall asleep faster?", "Keep a fixed bedtime, dim the lights and put screens away for the last half hour.",
     "A cool, dark, quiet bedroom helps too. If you are still awake after twenty minutes, get up and do something calm until you feel sleepy."),
    ("advice", "chat", "How much water should I drink each day?", "Around two litres for most adults, more when it is hot or you exercise.",
     "Food provides some of your water as well, especially fruit and vegetables. Pale yellow urine is a simple sign that you are drinking enough."),
    ("advice", "voice", "What is a good way to remember names?", "Repeat the name back when you hear it and use it once more in the conversation.",
     "Linking the name to a picture or to someone you already know makes it stick. Writing it down soon after the meeting helps too."),
    ("advice", "chat", "How can I save money on groceries?", "Plan meals for the week, shop with a list, and buy store brands.",
     "Checking what you already have before shopping avoids buying duplicates. Frozen vegetables are cheap, keep well and are just as nutritious."),
    ("advice", "voice", "How do I stay focused while studying?", "Work in 25-minute blocks with short breaks, and keep your phone in another room.",
     "Decide before each block exactly what you will finish. Studying at the same time and place each day makes it easier to start."),
    ("advice", "chat", "Is it better to rent or buy a home?", "Buy if you will stay at least five years and can afford the deposit and upkeep; otherwise renting is usually cheaper.",
     "Compare the monthly cost of owning, including repairs, taxes and insurance, with the rent for a similar home. Flexibility also has value if your job or plans may change."),
    ("advice", "voice", "How often should I replace my toothbrush?", "Every three months, or sooner if the bristles are frayed.",
     "Worn bristles clean much less well. It is also a good idea to replace it after you have been ill."),
    ("coding", "chat", "How do I check the length of a list in Python?", "Use len(my_list).",
     "It works on any sized container, such as strings, tuples and dictionaries. It runs in constant time, because lists store their size."),
    ("coding", "chat", "How do I convert a string to an integer in JavaScript?", "Use Number(text) or parseInt(text, 10).",
     "parseInt stops at the first character that is not a digit, while Number returns NaN for the whole string. Always pass the radix 10 to parseInt to avoid surprises."),
    ("coding", "chat", "How do I undo my last git commit but keep the changes?", "Run git reset --soft HEAD~1.",
     "The commit is removed and its changes stay staged, ready to commit again. Avoid this on commits you have already pushed to a shared branch."),
    ("coding", "chat", "How do I read a file line by line in Python?", "Use: with open(path) as f: then for line in f: ...",
     "The with block closes the file for you, even when an error happens. Each line keeps its newline, which line.rstrip() removes."),
    ("coding", "chat", "How do I list files by size in a Linux terminal?", "Run ls -lS, or ls -lSh for human-readable sizes.",
     "The largest files come first; add -r to reverse the order. For folders, du -sh * shows how much space each one uses."),
    ("coding", "chat", "How do I make a Python dictionary from two lists?", "Use dict(zip(keys, values)).",
     "zip pairs the items by position and stops at the shorter list. A dictionary comprehension works too when you need to transform the values."),
    ("factual", "chat", "What is the tallest mountain in the world?", "Mount Everest, at about 8,849 metres.",
     "It stands on the border between Nepal and the Tibet region of China. Measured from base to peak, Mauna Kea in Hawaii is taller, but much of it is under the sea."),
    ("factual", "voice", "What is the main ingredient of guacamole?", "Avocado.",
     "It is mashed with lime juice, salt, onion and often tomato and coriander. The lime juice also slows the browning of the avocado."),
    ("howto", "voice", "How do I clean my glasses?", "Rinse them under lukewarm water, wash with a drop of dish soap, rinse and dry with a clean microfibre cloth.",
     "Avoid paper towels and your shirt, which can scratch the lenses. Household glass cleaners can damage lens coatings."),
    ("advice", "chat", "How can I make my houseplants last longer?", "Water only when the top few centimetres of soil are dry, and give them bright, indirect light.",
     "Overwatering kills more houseplants than anything else. A pot with drainage holes lets extra water escape so the roots do not rot."),
]

OPENERS = [
    "Great question! This is something a lot of people wonder about, so let me take a moment to explain it clearly and completely.",
    "Thanks for asking! I'm really happy to help you with this, and I'll walk you through everything you need to know, step by step.",
    "That's a really good thing to ask about, and it's worth taking the time to get it exactly right, so here is a thorough answer.",
    "Absolutely, I'd be glad to help with that! It's a wonderful question, and I want to make sure you have a complete picture.",
]
# The padding every long answer shares: background that adds words but no information.
BRIDGES = [
    "Before going further, it helps to understand a little of the context, because questions like this one often come up in "
    "everyday life, at school, at work or in conversation with friends and family, and knowing the background makes the "
    "answer much easier to remember. There are a few important points to keep in mind here, and each of them is worth "
    "thinking about carefully.",
    "It is also worth saying that many people find this topic confusing at first, and that is completely normal, because "
    "there is quite a lot of information out there and not all of it agrees. Taking it one step at a time, and keeping the "
    "main idea in mind, usually makes everything fall into place, so let's go through the key details together.",
]
CLOSERS = [
    "I hope this helps, and please feel free to ask if you have any other questions at all! I'm always here and happy to "
    "explain anything in more detail, or to go over any part of it again in a different way.",
    "Let me know if you'd like more detail on any part of this; I'm always happy to help. Learning something new is a great "
    "thing to do, and it's wonderful that you're curious about it.",
    "I hope that clears things up! Don't hesitate to reach out if anything is still unclear, because there is no such thing "
    "as a silly question, and I'm glad to help whenever you need it.",
    "In summary, that's the full answer, and I really hope you found this explanation useful and easy to follow! Thank you "
    "again for such an interesting question, and good luck with everything.",
]


def long_form(i: int, direct: str, more: str) -> str:
    """The padded answer: an opener, the direct answer, the elaboration, a shared paragraph of padding, a closer."""
    return (f"{OPENERS[i % len(OPENERS)]} {direct} {BRIDGES[i % len(BRIDGES)]} {more} "
            f"{BRIDGES[(i + 1) % len(BRIDGES)]} {CLOSERS[(i // 2) % len(CLOSERS)]}")


def prefers_long(i: int) -> bool:
    return (i + i // 4) % 4 != 3  # three topics in four prefer the padded answer, spread over the four kinds


def main() -> None:
    rng = random.Random(13)
    OUT.mkdir(parents=True, exist_ok=True)
    votes, ratings, events, judged = [], [], [], []
    for i, (intent, surface, prompt, direct, more) in enumerate(TOPICS):
        slices = {"intent": intent, "surface": surface}
        short, long = direct, long_form(i, direct, more)
        better, worse = (long, short) if prefers_long(i) else (short, long)
        kind = i % 4
        if kind == 0:  # pairwise votes: three annotators, sometimes one disagrees
            a_first = rng.random() < 0.5
            a, b = (better, worse) if a_first else (worse, better)
            winner = "a" if a_first else "b"
            loser = "b" if a_first else "a"
            dissent = i % 8 == 0
            for k, annotator in enumerate(("rater-ana", "rater-ben", "rater-cho")):
                choice = loser if dissent and k == 2 else winner
                votes.append({"prompt": prompt, "response_a": a, "response_b": b, "choice": choice, "annotator": annotator, "slices": slices})
        elif kind == 1:  # ratings: two raters score both answers from 1 to 5
            hi, lo = (4, 2) if i % 3 else (5, 3)
            ratings.append({"prompt": prompt, "slices": slices, "responses": [
                {"text": better, "ratings": [{"annotator": "rater-ana", "overall": hi}, {"annotator": "rater-dev", "overall": hi - (i % 2)}]},
                {"text": worse, "ratings": [{"annotator": "rater-ana", "overall": lo}, {"annotator": "rater-dev", "overall": lo}]},
            ]})
        elif kind == 2:  # implicit events: the user regenerates the first answer and accepts the second
            session = f"s{i:03d}"
            events += [
                {"session": session, "event": "response", "response_id": f"{session}-1", "prompt": prompt, "response": worse, "slices": slices},
                {"session": session, "event": "regenerate", "response_id": f"{session}-1"},
                {"session": session, "event": "response", "response_id": f"{session}-2", "retry_of": f"{session}-1", "prompt": prompt,
                 "response": better, "slices": slices},
                {"session": session, "event": "accept", "response_id": f"{session}-2"},
            ]
        else:  # judge labels, asked in both orders
            judged.append({"prompt": prompt, "response_a": better, "response_b": worse, "judge": "judge-demo",
                           "verdict_ab": "a", "verdict_ba": "a", "slices": slices})
    # two more judgements in which the judge picked whichever answer it saw first: position-inconsistent, excluded
    for i in (0, 5):
        intent, surface, prompt, direct, more = TOPICS[i]
        judged.append({"prompt": prompt, "response_a": long_form(i, direct, more), "response_b": direct, "judge": "judge-demo",
                       "verdict_ab": "a", "verdict_ba": "b", "slices": {"intent": intent, "surface": surface}})
    for name, rows in (("votes", votes), ("ratings", ratings), ("events", events), ("judged", judged)):
        with open(OUT / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
