// The daily visitor-hash salts, alone in an account where deleting a blob destroys it: no blob or
// container soft delete, no versioning, no change feed, no point-in-time restore. These are account-wide
// settings, and the lake keeps soft delete for its events, so the salts cannot live in the lake account:
// there a deleted salt stayed recoverable for the soft-delete period, and with it the link between one
// day's visitor hashes and the next (README, Privacy).

@description('Azure region of the resources.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the storage account (3-24 lowercase letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Container that holds the daily visitor-hash salts.')
param saltContainerName string

@description('Resource ID of the Log Analytics workspace that receives the diagnostic logs.')
param workspaceId string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration reaches the account over its public endpoint; shared keys are off, so only Entra ID principals with a data role get in
  // checkov:skip=CKV_AZURE_59: the app (no VNet integration) needs the public endpoint, as for CKV_AZURE_35; a private endpoint needs a VNet-integrated app and private DNS, beyond this template
  // checkov:skip=CKV_AZURE_206: a lost salt account costs one day's visitor linking (a new salt is drawn); replicating secrets that must die buys nothing
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: false
    }
    containerDeleteRetentionPolicy: {
      enabled: false
    }
    isVersioningEnabled: false
    changeFeed: {
      enabled: false
    }
    restorePolicy: {
      enabled: false
    }
  }
}

resource saltContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: saltContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Deletions: the record that each day's salt was destroyed.
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: blobService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
