select site_id, site_name, primary_alliance, primary_outcome
from {{ source('consortium', 'sites') }}
