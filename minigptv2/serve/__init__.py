"""Ways to use a model, all thin layers over ``minigptv2.assistant.Assistant``."""
