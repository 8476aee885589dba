select instrument, band_rank, band, min_score, max_score_exclusive
from {{ source('registry', 'severity_bands') }}
