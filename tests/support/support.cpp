// Test support library: see the headers in this folder.
