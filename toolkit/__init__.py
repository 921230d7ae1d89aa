"""The deploy toolkit's library: everything the invoke tasks in tasks.py call."""
