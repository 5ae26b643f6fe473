// Key Vault in RBAC mode for the one secret hubcap has: the app registry (HUBCAP_APPS_JSON), which
// holds the apps' server keys. The Function App reads it through a Key Vault reference.

@description('Azure region of the resources.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the vault (3-24 characters, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Name of the secret that holds the app registry JSON.')
param appsSecretName string

@description('App registry JSON to store in the vault. Empty leaves the secret as it is (set it with az keyvault secret set).')
@secure()
param appsJson string

@description('Days a deleted vault or secret stays recoverable.')
@minValue(7)
@maxValue(90)
param softDeleteDays int

@description('Resource ID of the Log Analytics workspace that receives the diagnostic logs.')
param workspaceId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Key Vault references from a Function App without VNet integration use the public endpoint, and App Service is not a trusted service for the vault firewall; RBAC mode limits access to the two role holders
  // checkov:skip=CKV_AZURE_189: Key Vault references from an app without VNet integration need the public endpoint (see CKV_AZURE_109)
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteDays
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource appsSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(appsJson)) {
  // checkov:skip=CKV_AZURE_41: an expired secret is no longer served, so every app would be refused at once; rotate server keys by updating the registry (docs/deploy.md)
  // checkov:skip=CKV_AZURE_114: contentType is set below; checkov reads the properties of a conditional resource one level too deep
  parent: vault
  name: appsSecretName
  properties: {
    value: appsJson
    contentType: 'application/json'
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
