//! Azure Entra ID database tokens (to be written).
