"""The test runner of test.sh: every test module under tests/, one summary line."""
import sys
import unittest

suite = unittest.defaultTestLoader.discover("tests")
result = unittest.TextTestRunner(verbosity=2).run(suite)
failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
skipped = len(result.skipped)
line = "python: %d passed, %d failed" % (result.testsRun - failed - skipped, failed)
if skipped:
    line += ", %d skipped" % skipped
print(line)
sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
