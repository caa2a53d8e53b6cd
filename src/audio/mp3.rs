//! MP3 chunks: reading MPEG audio frames, planning the join, writing one MP3 with ID3v2 chapters and a Xing/LAME header.
