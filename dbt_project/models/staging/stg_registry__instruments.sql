select * from {{ source('registry', 'instruments') }}
