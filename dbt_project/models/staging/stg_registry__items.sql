select instrument, item_number, is_reversed, subscale
from {{ source('registry', 'items') }}
