"""Worked examples written for personae's programs (few-shot demonstrations).

They are prompt text, so they live with the signatures. Each is a dict of a signature's
fields; programs wrap them in ``dspy.Example`` and optimizers may replace them.
"""

from __future__ import annotations

__all__ = ["PERSONA_INFERENCE_DEMOS", "PERSONA_SYNTHESIS_DEMOS"]

PERSONA_INFERENCE_DEMOS: list[dict[str, str]] = [
    {
        "prompt": "What should I pack for a weekend hiking trip?",
        "chosen": "Water, snacks, a rain jacket, a map and a headlamp. Layers for the cold night.",
        "rejected": "Great question! Hiking is such a rewarding hobby. Before we get to the list, think "
                          "about the terrain, the forecast and your fitness. Then consider each category of "
                          "gear in turn, starting with footwear...",
        "persona": "The user is an experienced, busy hiker who wants a quick checklist without "
                   "encouragement or background.",
    },
    {
        "prompt": "Is it safe to take ibuprofen with my blood pressure medication?",
        "chosen": "It can be risky: ibuprofen can raise blood pressure and weaken some blood "
                              "pressure drugs. Ask your pharmacist or doctor before combining them.",
        "rejected": "Yes, ibuprofen is a common painkiller and most people take it without problems.",
        "persona": "The user is health-conscious and cautious, and values accurate warnings and advice "
                   "to consult a professional over reassurance.",
    },
    {
        "prompt": "Give me a name for my new goldfish.",
        "chosen": "How about Sir Bubbles the Brave? Every fish deserves a knighthood!",
        "rejected": "Common goldfish names include Goldie, Nemo and Finn.",
        "persona": "The user is light-hearted and enjoys playful, witty answers with personality "
                   "more than plain lists.",
    },
]

PERSONA_SYNTHESIS_DEMOS: list[dict[str, str]] = [
    {
        "preference_history": (
            "Choice 1\nRequest: What should I cook for a dinner party of six?\n"
            "Response A: A beef Wellington with truffle mash and a good Bordeaux makes an impression.\n"
            "Response B: A big pot of chilli with rice and toppings: cheap, easy to scale, and everyone "
            "builds their own bowl.\n"
            "Preferred: Response B\nWhy: B keeps costs and effort low; A assumes an expensive menu.\n\n"
            "Choice 2\nRequest: I need a laptop for university.\n"
            "Response A: A refurbished business laptop with 16 GB of memory does everything a student "
            "needs for a fraction of the price of a new one.\n"
            "Response B: Get the latest flagship model; it will last longer and feels premium.\n"
            "Preferred: Response A\nWhy: A finds a capable option that saves money."
        ),
        "reasoning": "Both times the user chose the answer that respects a tight budget over the lavish one.",
        "persona": (
            "The user is budget-conscious: they favour answers that suggest affordable, practical options "
            "and explain how to save money, and they are put off by recommendations that assume money is "
            "no object."
        ),
    },
]
