"""Audio: decode any media file to 16 kHz mono (`decode`, in time slices across processes: `decode_pool`), cut it
at silences into chunks (`chunking`), and encode speech for the player or an upload (`encode`)."""
