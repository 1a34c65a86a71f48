# Convenience aliases for the two README commands.
.PHONY: demo test setup
demo:
	bash scripts/bootstrap.sh demo
test:
	bash scripts/bootstrap.sh test
setup:
	bash scripts/bootstrap.sh setup
