// lapisctl: see README.md
