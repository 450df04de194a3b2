"""Who spoke when: speaker embeddings of short windows of speech, clustered, as speaker turns for the merge."""
