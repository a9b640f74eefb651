"""Checking the JS tracker SDK (sdk/js) the way an app runs it: its npm build, a page that tracks with the built
bundle, a naive page to compare it with, and a fault-injecting proxy standing in for a flaky network. Used by
tests/sdk and by `engage bench sdk`."""
