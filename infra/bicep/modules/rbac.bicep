// Role assignments, each scoped to the narrowest resource that works: the hub, a container, the
// table, the vault. The Function App's identity gets what its two functions use and nothing else.

@description('Principal (object) ID of the managed identity the Function App runs as.')
param appPrincipalId string

@description('Object ID of an operator (user, group or service principal) who manages the app registry and reads the lake; empty assigns nothing.')
param operatorPrincipalId string

@description('Kind of principal operatorPrincipalId is.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string

@description('Name of the Event Hubs namespace.')
param eventHubNamespaceName string

@description('Name of the hub.')
param eventHubName string

@description('Name of the host storage account.')
param hostStorageName string

@description('Name of the lake storage account.')
param lakeAccountName string

@description('Filesystem (container) of the lake.')
param lakeFilesystemName string

@description('Name of the salt storage account (no soft delete).')
param saltAccountName string

@description('Container of the salts.')
param saltContainerName string

@description('Table of the capture state.')
param stateTableName string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Name of the Key Vault.')
param keyVaultName string

@description('Table of the live metrics (lake.bicep creates it).')
param metricsTableName string = 'hubcapmetrics'

// Built-in role definition IDs (the same in every tenant).
var roles = {
  eventHubsDataSender: '2b629674-e913-4c01-ae53-ef4638d8f975'
  eventHubsDataReceiver: 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
}

var hasOperator = !empty(operatorPrincipalId)

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = {
  name: eventHubNamespaceName
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: namespace
  name: eventHubName
}

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}

resource lake 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: lakeAccountName
}

resource lakeBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: lake
  name: 'default'
}

resource lakeContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: lakeBlobService
  name: lakeFilesystemName
}

resource saltAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: saltAccountName
}

resource saltBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: saltAccount
  name: 'default'
}

resource saltContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: saltBlobService
  name: saltContainerName
}

resource lakeQueueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: lake
  name: 'default'
}

resource lakeTableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: lake
  name: 'default'
}

resource stateTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: lakeTableService
  name: stateTableName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

// Event Hubs Data Sender on the hub: the collector sends one message per accepted request.
resource collectorSends 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hub.id, appPrincipalId, roles.eventHubsDataSender)
  scope: hub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataSender)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Event Hubs Data Receiver on the hub: the capture trigger (and the scale controller) read it.
resource captureReceives 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hub.id, appPrincipalId, roles.eventHubsDataReceiver)
  scope: hub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataReceiver)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Storage Blob Data Owner on the host storage account: the Functions host keeps leases,
// checkpoints and the deployment package there (the documented minimum for AzureWebJobsStorage).
resource hostOwnsStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, appPrincipalId, roles.storageBlobDataOwner)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Storage Blob Data Contributor on the lake container: capture writes events/, rejected/, failed/.
resource captureWritesLake 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(lakeContainer.id, appPrincipalId, roles.storageBlobDataContributor)
  scope: lakeContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Storage Queue Data Contributor on the lake account's queues: the firehose's retry queues, one per
// destination, created as destinations appear (so no single queue to scope it to).
resource firehoseKeepsRetries 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(lakeQueueService.id, appPrincipalId, roles.storageQueueDataContributor)
  scope: lakeQueueService
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Storage Blob Data Contributor on the salt container: the collector creates, reads and destroys salts.
resource collectorKeepsSalts 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(saltContainer.id, appPrincipalId, roles.storageBlobDataContributor)
  scope: saltContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Storage Table Data Contributor on the state table: capture keeps its partition state there.
resource captureKeepsState 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(stateTable.id, appPrincipalId, roles.storageTableDataContributor)
  scope: stateTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource metricsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: lakeTableService
  name: metricsTableName
}

// Storage Table Data Contributor on the metrics table: the metrics sink writes it, /api/metrics reads it.
resource metricsKeepsCounters 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(metricsTable.id, appPrincipalId, roles.storageTableDataContributor)
  scope: metricsTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

@description('Table of the branded-link registry (lake.bicep creates it).')
param linksTableName string = 'hubcaplinks'

@description('Container of the redirect\'s click spool (lake.bicep creates it).')
param linksSpoolContainerName string = 'linkspool'

resource linksTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: lakeTableService
  name: linksTableName
}

// Storage Table Data Contributor on the link table: the redirect reads links, the management API writes them.
resource linksKeepsRegistry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(linksTable.id, appPrincipalId, roles.storageTableDataContributor)
  scope: linksTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource linksSpoolContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: lakeBlobService
  name: linksSpoolContainerName
}

// Storage Blob Data Contributor on the spool container: the redirect spools clicks, the drain deletes them.
resource linksSpoolsClicks 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(linksSpoolContainer.id, appPrincipalId, roles.storageBlobDataContributor)
  scope: linksSpoolContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Monitoring Metrics Publisher on Application Insights: telemetry with Entra ID auth (local auth is off).
resource appPublishesTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Key Vault Secrets User on the vault: the platform resolves the HUBCAP_APPS_JSON Key Vault reference.
resource appReadsRegistry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Key Vault Secrets Officer on the vault: the operator registers apps (sets the registry secret).
resource operatorManagesRegistry 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasOperator) {
  name: guid(vault.id, operatorPrincipalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// Storage Blob Data Reader on the lake container: the operator reads the lake (hubcap lake ls|cat|sql).
resource operatorReadsLake 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasOperator) {
  name: guid(lakeContainer.id, operatorPrincipalId, roles.storageBlobDataReader)
  scope: lakeContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}
