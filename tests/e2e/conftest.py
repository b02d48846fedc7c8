"""The end-to-end layer: the whole local stack (``make run``'s) and the console in headless
Chromium. Each test module starts what it drives and stops it whatever happens."""
