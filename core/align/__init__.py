"""Word times: the forced aligner (`aligner`), alignment of chunks as the ASR finishes them (`stream`), and the
repair of predicted times into usable ones (`word_times`)."""
